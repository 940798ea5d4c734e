-- How long a hold of a kind stays open: the school's settings->'holds'->'timeouts'->kind
-- (seconds), else the default for the kind (shower 30 min, laundry 3 h); NULL for a kind the
-- school does not know.
CREATE OR REPLACE FUNCTION cc_hold_timeout(p_school int, p_kind text) RETURNS interval
LANGUAGE sql STABLE AS $$
    SELECT make_interval(secs => coalesce(
        (SELECT (s.settings -> 'holds' -> 'timeouts' ->> p_kind)::int FROM schools s WHERE s.id = p_school),
        (jsonb_build_object('shower', 1800, 'water', 1800, 'laundry', 10800,
                            'computer_lab', 14400, 'bus', 600, 'order', 604800,
                            'bill', 86400) ->> p_kind)::int))
$$;
