"""People.

Schools, classes, persons and guardians, and what a cardholder reads about their account.
"""
