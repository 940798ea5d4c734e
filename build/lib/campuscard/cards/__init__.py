"""Cards.

The card state machine, the card center's transitions, the device blacklist and card expiry.
"""
