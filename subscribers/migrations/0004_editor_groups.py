"""The press office's roles: Redattore drafts, Pubblicatore sends, Amministratore configures."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

ROLES = {
    "Redattore": [
        "topics.add_post", "topics.change_post", "topics.view_post", "topics.view_topic",
        "subscribers.view_subscriber",
    ],
    "Pubblicatore": [
        "topics.add_post", "topics.change_post", "topics.view_post", "topics.view_topic",
        "topics.publish_post", "subscribers.view_subscriber", "subscribers.view_delivery",
        "channel.view_messagetemplate",
    ],
    "Amministratore": [
        "topics.add_post", "topics.change_post", "topics.delete_post", "topics.view_post",
        "topics.publish_post", "topics.add_topic", "topics.change_topic", "topics.view_topic",
        "topics.add_apitoken", "topics.change_apitoken", "topics.view_apitoken",
        "topics.view_auditentry", "channel.add_messagetemplate", "channel.change_messagetemplate",
        "channel.view_messagetemplate", "channel.change_sendingstate", "channel.view_sendingstate",
        "subscribers.view_subscriber", "subscribers.change_subscriber",
        "subscribers.view_delivery", "subscribers.view_consentevent",
    ],
}  # fmt: skip


def create_roles(apps, schema_editor):
    for app_config in apps.get_app_configs():  # permissions exist only after post_migrate
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, codes in ROLES.items():
        group, _ = Group.objects.get_or_create(name=name)
        for code in codes:
            app_label, codename = code.split(".")
            group.permissions.add(
                Permission.objects.get(content_type__app_label=app_label, codename=codename)
            )


class Migration(migrations.Migration):
    dependencies = [
        ("subscribers", "0003_delivery_lean_fan_out"),
        ("topics", "0003_publish_permission"),
        ("channel", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]
    operations = [migrations.RunPython(create_roles, migrations.RunPython.noop)]
