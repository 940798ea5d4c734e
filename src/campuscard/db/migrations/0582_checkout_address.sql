-- Checkout checks: the delivery address on file. An order to another address is paid only with
-- the cardholder's PIN (on the phone or at the personal reader), and then becomes the address on
-- file. docs/orders.md "Checkout checks".
ALTER TABLE persons ADD COLUMN delivery_address text NOT NULL DEFAULT ''
    CHECK (length(delivery_address) <= 200);
