"""The mail that comes back: bounces (DSNs), ARF complaints and mailto unsubscribes."""
