-- A phone bound from now on has a secret derived from the master key and what its codes carry
-- (school, token, step length): scheme 6. Its binding has no salt; a binding made before keeps
-- its salt and its phone's codes (scheme 7) work as before.
-- docs/decisions/0401-phones-keyed-by-their-token.md
ALTER TABLE paycode_devices ALTER COLUMN salt DROP NOT NULL;
