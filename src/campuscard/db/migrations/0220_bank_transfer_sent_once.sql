-- A transfer goes to the bank once: the first caller claims it by setting sent_at, and a resend
-- of the same client request (or a second worker) answers the state instead of sending the
-- request to the bank again, where a late approval could race our own reversal.
ALTER TABLE bank_transfers ADD COLUMN sent_at timestamptz;
-- transfers already past 'pending' were sent; open ones were too, as far as anyone can tell
UPDATE bank_transfers SET sent_at = updated_at WHERE sent_at IS NULL;
