"""Access on campus: doors, schedules and the calendar, grants, reader lists, door events,
anti-passback and visitors (docs/access.md)."""
