"""The privacy centre (the company portal): a data subject verifies who they are and exercises
the rights of privacy statement §11-§13 through the DSAR coordinator's HTTP API, as its
``portal`` caller and channel."""
