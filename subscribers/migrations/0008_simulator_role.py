"""Playing a citizen in the chat simulator is an administrator's right, not an editor's."""

from django.contrib.auth.management import create_permissions
from django.db import migrations


def grant(apps, schema_editor):
    for app_config in apps.get_app_configs():  # permissions exist only after post_migrate
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    permission = Permission.objects.get(content_type__app_label="channel", codename="use_simulator")
    group, _ = Group.objects.get_or_create(name="Amministratore")
    group.permissions.add(permission)


class Migration(migrations.Migration):
    dependencies = [
        ("subscribers", "0007_consent_state_indexes"),
        ("channel", "0003_simulator_permission"),
    ]
    operations = [migrations.RunPython(grant, migrations.RunPython.noop)]
