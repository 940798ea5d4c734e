-- Trace numbers for the bank link: every message gets a fresh STAN (field 11, the last six
-- digits) and every transfer a retrieval reference number (field 37, twelve digits).
CREATE SEQUENCE bank_trace_seq;
