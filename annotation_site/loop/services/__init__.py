"""Writes of the weekly loop: definitions and their versions (`definitions`), iterations and the
engine that advances them (`iterations`), what each step launches and decides (`steps`), and the
outcome's notifications (`notify`). docs/loop.md describes the loop."""
