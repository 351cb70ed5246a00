"""Widgets of the main screen; each renders one part of the SessionView."""
