"""Watching over students: rules that raise alerts with their reason in words, delivery to the
student and to parents who opted in, the school's supervision view, and quiet help for hidden
hardship. docs/monitoring.md describes each rule and the privacy choices."""
