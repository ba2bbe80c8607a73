"""The project package as an app: health views, errors, the scheduler, commands."""

from django.apps import AppConfig


class KubercaConfig(AppConfig):
    name = "kuberca"
    verbose_name = "kuberca"
