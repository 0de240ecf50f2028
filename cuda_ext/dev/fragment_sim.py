"""Lane-by-lane numpy model of one warp of ``csrc/attention_fwd.cu``, for checking index arithmetic without a GPU.

It applies the PTX ISA's fragment layouts (ldmatrix, ldmatrix.trans, mma.m16n8k16 A/B/C) to the same
shared-memory swizzle, ldmatrix addresses, P packing and epilogue formulas as the kernel, and compares the
result with a plain softmax-attention reference (float32, so layout errors show as O(1) differences and
correct layouts as ~1e-7). Keep it in step with the kernel when the fragment code changes.

    python cuda_ext/dev/fragment_sim.py
"""

# ruff: noqa: E741  (single-letter matrix names as in the PTX ISA)
import numpy as np

rng = np.random.default_rng(0)


def tile_offset(row, chunk, D):
    return row * D + ((chunk ^ (row & 7)) << 3)


def ldmatrix_x4(smem, addrs, trans=False):
    # addrs[lane] = element offset of row (lane%8) of matrix lane//8; returns regs[lane][i] = (lo, hi)
    mats = [np.stack([smem[addrs[8 * i + r] : addrs[8 * i + r] + 8] for r in range(8)]) for i in range(4)]
    out = [[None] * 4 for _ in range(32)]
    for t in range(32):
        for i in range(4):
            M = mats[i]
            if not trans:
                out[t][i] = (M[t // 4, 2 * (t % 4)], M[t // 4, 2 * (t % 4) + 1])
            else:
                out[t][i] = (M[2 * (t % 4), t // 4], M[2 * (t % 4) + 1, t // 4])
    return out


def mma(d, a, b0, b1):
    # d[lane] 4 floats; a[lane] 4 regs (lo,hi); b0,b1[lane] regs
    A = np.zeros((16, 16))
    B = np.zeros((16, 8))
    C = np.zeros((16, 8))
    for t in range(32):
        g, tig = t // 4, t % 4
        for j in range(4):
            for h in range(2):
                A[g + 8 * (j % 2), 2 * tig + h + 8 * (j // 2)] = a[t][j][h]
        for j, b in enumerate((b0[t], b1[t])):
            for h in range(2):
                B[2 * tig + h + 8 * j, g] = b[h]
        for e in range(4):
            C[g + 8 * (e // 2), 2 * tig + e % 2] = d[t][e]
    R = C + A.astype(np.float32) @ B.astype(np.float32)
    for t in range(32):
        g, tig = t // 4, t % 4
        for e in range(4):
            d[t][e] = R[g + 8 * (e // 2), 2 * tig + e % 2]


def run_block(D, BN, MT, q_len, kv_len, mask=None, q_start_rows=None):
    # one warp (warp 0) with MT m-tiles; whole block = 1 warp for simplicity
    WR = 16 * MT
    Q = rng.standard_normal((q_len, D)).astype(np.float32)
    K = rng.standard_normal((kv_len, D)).astype(np.float32)
    V = rng.standard_normal((kv_len, D)).astype(np.float32)
    scale = 1 / np.sqrt(D)
    sl2 = scale * np.log2(np.e)
    sq = np.zeros(WR * D, np.float32)
    for r in range(WR):
        for c in range(D // 8):
            if r < q_len:
                sq[tile_offset(r, c, D) : tile_offset(r, c, D) + 8] = Q[r, 8 * c : 8 * c + 8]
    qf = {}
    for mt in range(MT):
        for ks in range(D // 16):
            addrs = []
            for lane in range(32):
                m, r = lane // 8, lane % 8
                addrs.append(tile_offset(mt * 16 + r + (m & 1) * 8, ks * 2 + (m >> 1), D))
            qf[mt, ks] = ldmatrix_x4(sq, addrs)
    o = [[[[0.0] * 4 for _ in range(32)] for _ in range(D // 8)] for _ in range(MT)]
    rmax = np.full((MT, 32, 2), -np.inf)
    rsum = np.zeros((MT, 32, 2))
    nb = (kv_len + BN - 1) // BN
    for blk in range(nb):
        n0 = blk * BN
        sk = np.zeros(BN * D, np.float32)
        sv = np.zeros(BN * D, np.float32)
        for r in range(BN):
            for c in range(D // 8):
                if n0 + r < kv_len:
                    sk[tile_offset(r, c, D) : tile_offset(r, c, D) + 8] = K[n0 + r, 8 * c : 8 * c + 8]
                    sv[tile_offset(r, c, D) : tile_offset(r, c, D) + 8] = V[n0 + r, 8 * c : 8 * c + 8]
        s = [[[[0.0] * 4 for _ in range(32)] for _ in range(BN // 8)] for _ in range(MT)]
        for ks in range(D // 16):
            for np_ in range(BN // 16):
                addrs = [
                    tile_offset(np_ * 16 + (l % 8) + ((l // 8) >> 1) * 8, ks * 2 + ((l // 8) & 1), D)
                    for l in range(32)
                ]
                kf = ldmatrix_x4(sk, addrs)
                for mt in range(MT):
                    mma(
                        s[mt][2 * np_],
                        qf[mt, ks],
                        [kf[t][0] for t in range(32)],
                        [kf[t][1] for t in range(32)],
                    )
                    mma(
                        s[mt][2 * np_ + 1],
                        qf[mt, ks],
                        [kf[t][2] for t in range(32)],
                        [kf[t][3] for t in range(32)],
                    )
        for t in range(32):
            for nt in range(BN // 8):
                for e in range(2):
                    col = n0 + nt * 8 + (t % 4) * 2 + e
                    keep = col < kv_len and (mask is None or mask[col])
                    if not keep:
                        for mt in range(MT):
                            s[mt][nt][t][e] = -np.inf
                            s[mt][nt][t][e + 2] = -np.inf
        pf = {}
        for mt in range(MT):
            sm = np.zeros((32, 2))
            newm = np.zeros((32, 2))
            for t in range(32):
                for r in range(2):
                    m = rmax[mt, t, r]
                    for nt in range(BN // 8):
                        m = max(m, s[mt][nt][t][2 * r], s[mt][nt][t][2 * r + 1])
                    newm[t, r] = m
            for t in range(32):  # quad shuffles
                for r in range(2):
                    q0 = t - t % 4
                    sm[t, r] = max(newm[q0 : q0 + 4, r])
            for t in range(32):
                for r in range(2):
                    m = sm[t, r]
                    smax = 0.0 if m == -np.inf else m * sl2
                    alpha = np.exp2(rmax[mt, t, r] * sl2 - smax)
                    rmax[mt, t, r] = m
                    rsum[mt, t, r] *= alpha
                    for dt in range(D // 8):
                        o[mt][dt][t][2 * r] *= alpha
                        o[mt][dt][t][2 * r + 1] *= alpha
                    for nt in range(BN // 8):
                        for e in range(2):
                            s[mt][nt][t][2 * r + e] = np.exp2(s[mt][nt][t][2 * r + e] * sl2 - smax)
                        rsum[mt, t, r] += s[mt][nt][t][2 * r] + s[mt][nt][t][2 * r + 1]
            for kk in range(BN // 16):
                regs = [[None] * 4 for _ in range(32)]
                for nt in (2 * kk, 2 * kk + 1):
                    for t in range(32):
                        regs[t][(nt & 1) * 2 + 0] = (s[mt][nt][t][0], s[mt][nt][t][1])
                        regs[t][(nt & 1) * 2 + 1] = (s[mt][nt][t][2], s[mt][nt][t][3])
                pf[mt, kk] = regs
        for kk in range(BN // 16):
            for dp in range(D // 16):
                addrs = [
                    tile_offset(kk * 16 + (l % 8) + ((l // 8) & 1) * 8, dp * 2 + ((l // 8) >> 1), D)
                    for l in range(32)
                ]
                vf = ldmatrix_x4(sv, addrs, trans=True)
                for mt in range(MT):
                    mma(
                        o[mt][2 * dp],
                        pf[mt, kk],
                        [vf[t][0] for t in range(32)],
                        [vf[t][1] for t in range(32)],
                    )
                    mma(
                        o[mt][2 * dp + 1],
                        pf[mt, kk],
                        [vf[t][2] for t in range(32)],
                        [vf[t][3] for t in range(32)],
                    )
    so = np.full(WR * D, np.nan, np.float32)
    for mt in range(MT):
        for r in range(2):
            for t in range(32):
                q0 = t - t % 4
                tot = rsum[mt, q0 : q0 + 4, r].sum()
                inv = 1 / tot if tot > 0 else 0
                row = mt * 16 + t // 4 + r * 8
                for dt in range(D // 8):
                    off = tile_offset(row, dt, D) + (t % 4) * 2
                    so[off] = o[mt][dt][t][2 * r] * inv
                    so[off + 1] = o[mt][dt][t][2 * r + 1] * inv
    out = np.full((WR, D), np.nan)
    for i in range(WR * (D // 8) // 32):
        for lane in range(32):
            idx = lane + 32 * i
            row = idx // (D // 8)
            ch = idx % (D // 8)
            if row < q_len:
                out[row, 8 * ch : 8 * ch + 8] = so[tile_offset(row, ch, D) : tile_offset(row, ch, D) + 8]
    # reference
    S = Q[:WR] @ K.T * scale
    if mask is not None:
        S[:, ~mask] = -np.inf
    ref = np.zeros((min(q_len, WR), D))
    for i in range(min(q_len, WR)):
        if np.all(np.isinf(S[i])):
            continue
        p = np.exp(S[i] - S[i].max())
        ref[i] = p @ V / p.sum()
    err = np.abs(out[: min(q_len, WR)] - ref).max()
    assert not np.isnan(out[: min(q_len, WR)]).any()
    return err


def main() -> None:
    cases = [
        (64, 64, 1, 16, 64),
        (64, 64, 1, 11, 150),
        (128, 32, 2, 29, 77),
        (64, 64, 2, 32, 200),
        (128, 64, 1, 5, 1),
    ]
    for head_dim, block_n, m_tiles, q_len, kv_len in cases:
        error = run_block(head_dim, block_n, m_tiles, q_len, kv_len)
        print(
            f"head_dim {head_dim} block_n {block_n} m_tiles {m_tiles} q {q_len} kv {kv_len}: max error {error:.1e}"
        )
        assert error < 1e-5
    print(f"random key mask: max error {run_block(64, 64, 1, 16, 130, mask=rng.random(130) > 0.5):.1e}")
    print(
        f"all keys masked (zeros expected): max error {run_block(64, 32, 1, 16, 70, mask=np.zeros(70, bool)):.1e}"
    )


if __name__ == "__main__":
    main()
