CREATE OR REPLACE FUNCTION cc_refusal(p_status int, p_code text, p_message text, p_field text DEFAULT NULL,
                           p_details jsonb DEFAULT NULL)
RETURNS jsonb LANGUAGE sql IMMUTABLE AS $$
    SELECT jsonb_build_object('status', p_status, 'body', jsonb_build_object('error',
        jsonb_strip_nulls(jsonb_build_object('code', p_code, 'message', p_message,
                                             'details', p_details))
        || jsonb_build_object('field', p_field)))
$$;
