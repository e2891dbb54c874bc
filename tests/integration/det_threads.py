#!/usr/bin/env python3
"""Deterministic mode's Python probe (test_sim_det.sh): threads of a rank
that meet through Python's own primitives (threading.Lock, a
queue.Queue, a threading.Condition, time.sleep), all semaphores and
condition variables underneath, and the GIL between them. Three producers
compute (near-equal stretches) and put items on a queue; a consumer takes
them and appends them under a lock; the main thread waits on a Condition
(with a time-out) until all are in. Prints the order in which the items
were taken ("order: ..."), then "end: NS" (time.monotonic_ns: virtual in
simulate mode)."""
import queue
import threading
import time

NP, K = 3, 12
q = queue.Queue()
lock = threading.Lock()
done = threading.Condition()
taken = []


def work(n):
    x = 0
    for i in range(n):
        x += i * i
    return x


def producer(p):
    for j in range(K):
        work(3000 + 400 * ((p * 7 + j * 5) % 11))
        q.put((p, j))
        if j % 4 == 3:
            time.sleep(0.0002)


def consumer():
    for _ in range(NP * K):
        item = q.get()
        with lock:
            taken.append(item)
        if len(taken) % 6 == 0 or len(taken) == NP * K:
            with done:
                done.notify()


threads = [threading.Thread(target=producer, args=(p,)) for p in range(NP)]
threads.append(threading.Thread(target=consumer))
for t in threads:
    t.start()
with done:
    while len(taken) < NP * K:
        done.wait(0.005)
for t in threads:
    t.join()
print("order: " + " ".join(f"{p}.{j}" for p, j in taken) + f"\nend: {time.monotonic_ns()}", flush=True)
