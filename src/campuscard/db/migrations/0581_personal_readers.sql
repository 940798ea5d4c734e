-- Personal readers: a card reader at home or in the office, bound to exactly one card when the
-- card center registers it; it refuses every other card. The cardholder pays orders on it with
-- card + PIN. docs/orders.md, docs/terminal-protocol.md section 13.
ALTER TABLE terminals DROP CONSTRAINT terminals_kind_check;
ALTER TABLE terminals ADD CONSTRAINT terminals_kind_check
    CHECK (kind IN ('pos', 'kiosk', 'door', 'shop', 'personal'));
-- the bound card, of the terminal's school (checked by orders/readers.py when registering: on
-- a fresh database this runs before cards has a (school_id, id) key to refer to)
ALTER TABLE terminals ADD COLUMN card_id bigint;
ALTER TABLE terminals ADD CONSTRAINT terminals_personal_has_card
    CHECK ((kind = 'personal') = (card_id IS NOT NULL));
