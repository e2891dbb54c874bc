#!/usr/bin/env python3
"""A read with MSG_DONTWAIT of a connection to the rendezvous store (test
_sim_det_torchrun.sh: the store is torchrun's agent's, outside the
session): after init_process_group, each rank connects to MASTER_PORT
itself and reads with MSG_DONTWAIT before it has asked anything: the
kernel's answer, at once (EAGAIN). The turn's wait for a store outside
the session to answer is for reads that may block; before session 20 this
read waited in turn until some rank wrote to the store."""
import os
import socket

import torch.distributed as dist

dist.init_process_group("gloo")
s = socket.create_connection((os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"])))
try:
    got = f"{len(s.recv(16, socket.MSG_DONTWAIT))} bytes"
except BlockingIOError:
    got = "EAGAIN"
s.close()
print(f"rank {dist.get_rank()}: recv MSG_DONTWAIT on the store: {got}", flush=True)
dist.destroy_process_group()
