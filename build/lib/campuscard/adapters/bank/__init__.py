"""The bank link (银校互联, 圈存): ISO 8583 over TCP with a MAC, the client and a simulator."""
