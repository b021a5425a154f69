"""Importing a broadcast list is a configuration task: the Amministratore group may do it."""

from django.contrib.auth.management import create_permissions
from django.db import migrations


def grant(apps, schema_editor):
    for app_config in apps.get_app_configs():  # permissions exist only after post_migrate
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    permission = Permission.objects.get(
        content_type__app_label="subscribers", codename="import_subscribers"
    )
    group, _ = Group.objects.get_or_create(name="Amministratore")
    group.permissions.add(permission)


class Migration(migrations.Migration):
    dependencies = [("subscribers", "0005_import_and_dashboard")]
    operations = [migrations.RunPython(grant, migrations.RunPython.noop)]
