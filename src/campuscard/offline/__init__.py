"""Offline devices, store and forward: a till that lost the network approves within the risk
limits it got with its blacklist, and uploads signed, numbered records when it is back; they are
stored once by (device, sequence), settled along each card's chain, and what the purses cannot
cover is an offline overdraft the next top-up repays."""
