from django.urls import path

from annotation_site.annotation import views

urlpatterns = [
    path("", views.home, name="home"),
    path("annotate/", views.annotate, name="annotate"),
]
