"""A stand-in for a school's purses and its booking function, small enough to distribute in a test:
tests/citus checks that Citus delegates it, bench/citus.py times it."""

STAND_IN_SCHEMA = """
CREATE TABLE purse (
    school_id bigint NOT NULL,
    purse_id bigint NOT NULL,
    balance bigint NOT NULL CHECK (balance >= 0),
    PRIMARY KEY (school_id, purse_id)
);
CREATE TABLE payment (
    school_id bigint NOT NULL,
    payment_id bigserial,
    purse_id bigint NOT NULL,
    amount bigint NOT NULL CHECK (amount > 0),
    PRIMARY KEY (school_id, payment_id),
    FOREIGN KEY (school_id, purse_id) REFERENCES purse (school_id, purse_id)
);
CREATE FUNCTION pay(p_school_id bigint, p_purse_id bigint, p_amount bigint)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    v_balance bigint;
BEGIN
    UPDATE purse SET balance = balance - p_amount
     WHERE school_id = p_school_id AND purse_id = p_purse_id
    RETURNING balance INTO v_balance;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no purse % in school %', p_purse_id, p_school_id;
    END IF;
    INSERT INTO payment (school_id, purse_id, amount) VALUES (p_school_id, p_purse_id, p_amount);
    RETURN v_balance;
END $$;
"""
