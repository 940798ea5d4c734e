-- Every journal transaction nets to zero at commit. cc_post_many checks each of its bookings
-- before it writes them (cc.posting_batch on): its postings queue no check of their own, and a
-- posting added to one of its transactions later is checked with all its siblings.
DROP TRIGGER IF EXISTS postings_balanced ON postings;
CREATE CONSTRAINT TRIGGER postings_balanced AFTER INSERT ON postings
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW
    WHEN (current_setting('cc.posting_batch', true) IS DISTINCT FROM 'on')
    EXECUTE FUNCTION cc_check_tx_balanced();
