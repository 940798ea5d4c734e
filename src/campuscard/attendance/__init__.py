"""Attendance from the campus card: points, periods per class, daily sheets for the teacher,
leave requests, the month's summary and export, absence notices to parents (docs/access.md)."""
