"""The billing store: invoices, payments, collection cases and credit checks."""
