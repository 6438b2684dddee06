"""Browser pages (one router per resource) and, under routes.api, the JSON API."""
