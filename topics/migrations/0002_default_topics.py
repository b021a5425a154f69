from django.db import migrations

DEFAULT_TOPICS = [
    # slug, Italian name, English name, Italian description, English description, emoji
    ("scuola", "Scuola", "Schools", "Iscrizioni, mense, calendario e chiusure delle scuole",
     "Enrolment, school meals, calendar and closures", "🏫"),
    ("cantieri-viabilita", "Cantieri e viabilità", "Roadworks and traffic",
     "Lavori stradali, chiusure e deviazioni", "Roadworks, closures and detours", "🚧"),
    ("raccolta-differenziata", "Raccolta differenziata", "Recycling",
     "Calendario della raccolta, ecocentri e novità", "Collection calendar, recycling centres, news",
     "♻️"),
    ("eventi-cultura", "Eventi e cultura", "Events and culture",
     "Spettacoli, mostre, feste e biblioteche", "Shows, exhibitions, festivals and libraries", "🎭"),
    ("farmacie-di-turno", "Farmacie di turno", "Pharmacies on duty",
     "Quali farmacie sono aperte oggi e stanotte", "Which pharmacies are open today and tonight",
     "💊"),
    ("avvisi-urgenti", "Avvisi urgenti / Protezione civile", "Urgent alerts / Civil protection",
     "Allerte meteo, emergenze e avvisi della Protezione civile",
     "Weather warnings, emergencies and civil protection notices", "🚨"),
]  # fmt: skip


def load(apps, schema_editor):
    Topic = apps.get_model("topics", "Topic")
    for order, (slug, name_it, name_en, desc_it, desc_en, emoji) in enumerate(DEFAULT_TOPICS):
        Topic.objects.get_or_create(
            slug=slug,
            defaults={
                "name_it": name_it,
                "name_en": name_en,
                "description_it": desc_it,
                "description_en": desc_en,
                "emoji": emoji,
                "order": order * 10,
            },
        )


def unload(apps, schema_editor):
    Topic = apps.get_model("topics", "Topic")
    Topic.objects.filter(slug__in=[t[0] for t in DEFAULT_TOPICS], posts=None).delete()


class Migration(migrations.Migration):
    dependencies = [("topics", "0001_initial")]
    operations = [migrations.RunPython(load, unload)]
