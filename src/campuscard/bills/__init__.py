"""Bills and fees: fee items per term, bills per student, paying them (card, provider, bank
transfer by reference), instalments and late fees, arrears and the holds they bring, receipts,
and prepaid dorm utilities. docs/bills.md"""
