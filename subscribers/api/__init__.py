"""The REST API other city systems use to publish to their topics (see README, "REST API")."""
