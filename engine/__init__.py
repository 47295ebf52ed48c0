"""The engine: the runtime core every front door calls and every protocol adapter serves.

Resolution (registry, catalog), validation (credential forms, parameter rules, messages and
tools), pricing, the error tree and the one egress module. It imports neither protobuf nor any
provider or protocol: the providers wing hands the registry its protocol table.
"""
