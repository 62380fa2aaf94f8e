"""The OpenAPI 3.1 description of the public JSON API, served at /api/openapi.json."""

from __future__ import annotations

SLUG = {"name": "slug", "in": "path", "required": True,
        "schema": {"type": "string", "pattern": "^[a-z0-9]+(-[a-z0-9]+)*$", "maxLength": 80}}
ERROR = {"description": "No petition with this slug",
         "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
COUNTS_BY = {"type": "object", "additionalProperties": {"type": "integer", "minimum": 0}}

SPEC = {
    "openapi": "3.1.0",
    "info": {
        "title": "Campaign Kazakhstan petitions",
        "version": "1",
        "description": "Confirmed signature counts of the campaign's petitions. No personal data. Any origin "
                       "may read it (CORS GET).",
    },
    "paths": {
        "/api/petitions": {"get": {
            "summary": "Every petition with its counts",
            "operationId": "listPetitions",
            "responses": {"200": {"description": "The petitions", "content": {"application/json": {"schema": {
                "type": "object", "required": ["petitions"],
                "properties": {"petitions": {"type": "array", "items": {"$ref": "#/components/schemas/Petition"}}},
            }}}}},
        }},
        "/api/petitions/{slug}": {"get": {
            "summary": "One petition with its counts",
            "operationId": "getPetition",
            "parameters": [SLUG],
            "responses": {"200": {"description": "The petition", "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/Petition"}}}}, "404": ERROR},
        }},
        "/api/petitions/{slug}/counts.json": {"get": {
            "summary": "Confirmed signatures by country and by day",
            "operationId": "getCountsJson",
            "parameters": [SLUG],
            "responses": {"200": {"description": "The counts", "content": {"application/json": {"schema": {
                "type": "object", "required": ["slug", "signature_count", "by_country", "by_day"],
                "properties": {
                    "slug": {"type": "string"},
                    "signature_count": {"type": "integer", "minimum": 0},
                    "by_country": COUNTS_BY,
                    "by_day": COUNTS_BY,
                    "by_day_and_country": {"type": "array", "items": {
                        "type": "object", "required": ["day", "country", "signatures"],
                        "properties": {"day": {"type": "string", "format": "date"},
                                       "country": {"type": "string"},
                                       "signatures": {"type": "integer", "minimum": 0}}}},
                }}}}}, "404": ERROR},
        }},
        "/api/petitions/{slug}/counts.csv": {"get": {
            "summary": "The same counts as CSV rows day,country,signatures",
            "operationId": "getCountsCsv",
            "parameters": [SLUG],
            "responses": {"200": {"description": "The counts", "content": {"text/csv": {"schema": {"type": "string"}}}},
                          "404": ERROR},
        }},
    },
    "components": {"schemas": {
        "Petition": {"type": "object",
                     "required": ["slug", "title", "target", "goal", "signature_count", "is_open", "state",
                                  "closed_on", "opens_at", "closes_at", "by_country"],
                     "properties": {
                         "slug": {"type": "string"}, "title": {"type": "string"}, "target": {"type": "string"},
                         "goal": {"type": "integer", "minimum": 1},
                         "signature_count": {"type": "integer", "minimum": 0},
                         "is_open": {"type": "boolean"},
                         "state": {"type": "string", "enum": ["open", "not_open", "closed"]},
                         "closed_on": {"type": ["string", "null"], "format": "date",
                                       "description": "The day it stopped taking signatures (early or on "
                                                      "its last day); null while not closed"},
                         "opens_at": {"type": "string", "format": "date"},
                         "closes_at": {"type": "string", "format": "date"},
                         "by_country": COUNTS_BY}},
        "Error": {"type": "object", "required": ["error", "message", "status"],
                  "properties": {"error": {"type": "string"}, "message": {"type": "string"},
                                 "status": {"type": "integer"}}},
    }},
}
