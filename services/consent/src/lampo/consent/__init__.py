"""The consent ledger (DESIGN.md: consent; privacy statement §5 and §13)."""
