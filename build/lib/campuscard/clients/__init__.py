"""Clients of the CampusCard API that ship with it (the import uploader, the kiosk agent)."""
