from django import template

register = template.Library()


@register.filter
def percent(value) -> str:
    """An accuracy in [0, 1] as the paper prints it (80.7); '-' where there is none."""
    return "-" if value is None else f"{100 * value:.1f}"


@register.filter
def number(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "-" if value is None else str(value)
