-- The business date of a school for an instant (by default the engine's clock, cc_clock():
-- now): local date after the cut-off.
CREATE OR REPLACE FUNCTION cc_business_date(p_school int, p_at timestamptz DEFAULT cc_clock())
RETURNS date LANGUAGE sql STABLE AS $$
    SELECT ((p_at AT TIME ZONE s.timezone) - s.day_cutoff)::date FROM schools s WHERE s.id = p_school
$$;
