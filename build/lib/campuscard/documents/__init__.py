"""Documents the system hands out: settlement statements (printable page, XLSX), the bank
payout instruction file (CSV) and report exports. Pure rendering from service results."""
