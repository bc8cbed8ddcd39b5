"""The support bundle: one archive with what a helper needs to troubleshoot this Hearth.

`bundle.py` builds it (`facts.py` reads the data directory, `redact.py` keeps every secret out),
`channel.py` lets `hearth support bundle` (`cli.py`) ask the running service for it over the local
control channel, and web/support_routes.py serves it to the System page and offers it on that channel.
"""
