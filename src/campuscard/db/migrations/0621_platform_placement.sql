-- The last tables placed for Citus (docs/scale-out.md, decision 0232).
--
-- Users and their roles are platform-wide (a platform operator has no school; sign-in looks a
-- name up before it knows a school): reference tables, copied to every worker, so every
-- school table may keep its foreign key to users. A reference table keeps no foreign key into
-- a school's tables: a user's person and a role's merchant are kept as values (persons and
-- merchants are never deleted; they leave or close).
ALTER TABLE users DROP CONSTRAINT users_person_id_fkey;
ALTER TABLE user_roles DROP CONSTRAINT user_roles_merchant_id_fkey;

-- Sessions, the hash-chained audit log (one chain for the platform) and the outbox (whose rows
-- defer procrastinate jobs in the same statement) stay on the coordinator: nothing here is
-- written by the payment path.

-- Idempotency keys belong to the school whose work they guard, so a payment's key is on the
-- worker that books it. School 0 holds keys of requests that named no school we know (the
-- work refuses them); it has no foreign key to schools, like login_throttle.
ALTER TABLE idempotency_keys ADD COLUMN school_id int;
UPDATE idempotency_keys k SET school_id = t.school_id
  FROM terminals t
 WHERE k.scope ~ '^(terminal|kiosk-pickup):[0-9]+$' AND t.id = split_part(k.scope, ':', 2)::bigint;
UPDATE idempotency_keys SET school_id = split_part(scope, ':', 2)::int
 WHERE school_id IS NULL AND scope ~ '^(hold|order-[a-z]+):[0-9]+(:|$)';
UPDATE idempotency_keys k SET school_id = u.school_id
  FROM users u
 WHERE k.school_id IS NULL AND k.scope ~ '^[a-z_-]+:[0-9]+$'
   AND u.id = split_part(k.scope, ':', 2)::bigint;
UPDATE idempotency_keys SET school_id = 0 WHERE school_id IS NULL;
ALTER TABLE idempotency_keys ALTER COLUMN school_id SET NOT NULL,
    DROP CONSTRAINT idempotency_keys_pkey,
    ADD CONSTRAINT idempotency_keys_pkey PRIMARY KEY (school_id, scope, key);

-- A settlement line gets a key of its own.
ALTER TABLE settlement_lines ADD COLUMN id bigserial;
ALTER TABLE settlement_lines ADD CONSTRAINT settlement_lines_pkey PRIMARY KEY (school_id, id);

-- A school's system accounts are opened by whoever creates the school
-- (campuscard.people.directory.open_school_accounts), not by triggers on schools: on Citus the
-- triggers of a reference table run on every node's copy of it.
DROP TRIGGER IF EXISTS schools_system_accounts ON schools;
DROP TRIGGER IF EXISTS schools_settlement_accounts ON schools;
DROP TRIGGER IF EXISTS schools_offline_accounts ON schools;
DROP FUNCTION IF EXISTS cc_create_system_accounts();
DROP FUNCTION IF EXISTS cc_create_settlement_accounts();
DROP FUNCTION IF EXISTS cc_create_offline_accounts();
