"""An fsx-style exerciser: random positioned writes and reads, sequential
passes in 4 KiB reads (read-ahead), truncations, fsyncs and size checks on
one file, each read compared with an in-memory model.

    fsx.py SEED PATH [OPS]
"""
import os, random, sys
seed = int(sys.argv[1]); path = sys.argv[2]; ops = int(sys.argv[3]) if len(sys.argv) > 3 else 2000
rnd = random.Random(seed)
model = bytearray()
fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
MAX = 1 << 20
for n in range(ops):
    op = rnd.random()
    if op < 0.35:
        off = rnd.randrange(0, MAX); ln = rnd.choice([1, 100, 4096, 5000, 65536])
        data = bytes([rnd.randrange(256)]) * ln
        os.pwrite(fd, data, off)
        if len(model) < off: model.extend(b"\0" * (off - len(model)))
        model[off:off + ln] = data
    elif op < 0.7:
        off = rnd.randrange(0, MAX); ln = rnd.choice([1, 4096, 65536, 200000])
        got = os.pread(fd, ln, off)
        if got != bytes(model[off:off + ln]):
            print("MISMATCH read", n, off, ln, len(got)); sys.exit(1)
    elif op < 0.8:
        # sequential pass in 4 KiB reads (read-ahead)
        os.lseek(fd, 0, 0); pos = 0
        while True:
            b = os.read(fd, 4096)
            if not b: break
            if b != bytes(model[pos:pos + len(b)]):
                print("MISMATCH seq", n, pos); sys.exit(1)
            pos += len(b)
        if pos != len(model): print("MISMATCH len", n, pos, len(model)); sys.exit(1)
    elif op < 0.85:
        ln = rnd.randrange(0, MAX); os.ftruncate(fd, ln)
        if ln < len(model): del model[ln:]
        else: model.extend(b"\0" * (ln - len(model)))
    elif op < 0.9:
        os.fsync(fd)
    else:
        st = os.fstat(fd).st_size
        if st != len(model): print("MISMATCH size", n, st, len(model)); sys.exit(1)
os.close(fd)
print("ok", len(model))
