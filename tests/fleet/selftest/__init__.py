"""Tests of the SSH test fleet itself (sshd, stand-ins, faults, spec, order checker): not of xsoar-mt."""
