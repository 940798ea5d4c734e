"""The dorm utility vendor (prepaid electricity and water meters): client and simulator."""
