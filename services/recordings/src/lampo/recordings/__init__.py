"""Call recordings and archived e-mails."""
