#include "textflag.h"

// func castagnoli3SSE42(c0, c1, c2 uint32, p0, p1, p2 *byte, n int) (r0, r1, r2 uint32)
//
// Runs the CRC32 instruction over the first n bytes of three buffers at
// once. The three dependency chains interleave, so the loop runs
// at the instruction's throughput instead of its latency. No pre- or
// post-inversion: the caller does that, as hash/crc32 does.
TEXT ·castagnoli3SSE42(SB), NOSPLIT, $0-60
	MOVL c0+0(FP), AX
	MOVL c1+4(FP), BX
	MOVL c2+8(FP), DX
	MOVQ p0+16(FP), R8
	MOVQ p1+24(FP), R9
	MOVQ p2+32(FP), R10
	MOVQ n+40(FP), CX
	MOVQ CX, R11
	SHRQ $3, CX
	JZ   tail

loop:
	CRC32Q (R8), AX
	CRC32Q (R9), BX
	CRC32Q (R10), DX
	ADDQ $8, R8
	ADDQ $8, R9
	ADDQ $8, R10
	DECQ CX
	JNZ  loop

tail:
	// The last n%8 bytes: 4, 2, then 1 at a time.
	BTQ $2, R11
	JNC tail2
	CRC32L (R8), AX
	CRC32L (R9), BX
	CRC32L (R10), DX
	ADDQ $4, R8
	ADDQ $4, R9
	ADDQ $4, R10

tail2:
	BTQ $1, R11
	JNC tail1
	CRC32W (R8), AX
	CRC32W (R9), BX
	CRC32W (R10), DX
	ADDQ $2, R8
	ADDQ $2, R9
	ADDQ $2, R10

tail1:
	BTQ $0, R11
	JNC done
	CRC32B (R8), AX
	CRC32B (R9), BX
	CRC32B (R10), DX

done:
	MOVL AX, r0+48(FP)
	MOVL BX, r1+52(FP)
	MOVL DX, r2+56(FP)
	RET
