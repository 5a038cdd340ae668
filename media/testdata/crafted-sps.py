"""Writes crafted-hevc-sps-inter-rps-scaling-lists-1080p.bin and
crafted-h264-sps-scaling-matrices-poc1-mbaff-1080p.bin: parameter sets exercising syntax that
x264 / x265 never put in an SPS (H.264 SPS scaling matrices, POC type 1, MBAFF cropping; H.265
sub-layer profile/level, scaling_list_data, PCM, inter-predicted short-term RPSs, long-term
refs, extended SAR, default display window).

Verification (needs x265.hevc / x264.h264 made by ffmpeg with libx265 / libx264, e.g.
`ffmpeg -f lavfi -i testsrc2=size=1280x720:rate=30 -frames:v 2 -c:v libx265 -f hevc x265.hevc`):
the script splices each SPS into the stream (crafted.hevc / crafted.h264); then
`ffmpeg -i crafted.hevc -c copy -bsf:v trace_headers -f null -` shows every SPS element read as
written here, and `ffprobe -show_streams` reports 1920x1080, SAR 7:5, 24000/1001 (H.265) and
1920x1080, SAR 4:3, 30000/1001 (H.264). The slices then fail to decode, as expected.
"""
import sys
class W:
    def __init__(s): s.bits=[]
    def u(s,n,v):
        for i in range(n-1,-1,-1): s.bits.append((v>>i)&1)
    def f(s,b): s.u(1,1 if b else 0)
    def ue(s,v):
        v+=1; n=v.bit_length(); s.u(n-1,0); s.u(n,v)
    def se(s,v): s.ue(2*v-1 if v>0 else -2*v)
    def trailing(s):
        s.bits.append(1)
        while len(s.bits)%8: s.bits.append(0)
    def bytes(s):
        return bytes(int(''.join(map(str,s.bits[i:i+8])),2) for i in range(0,len(s.bits),8))
def epb(b):
    out=bytearray(); z=0
    for x in b:
        if z>=2 and x<=3: out.append(3); z=0
        out.append(x); z = z+1 if x==0 else 0
    return bytes(out)

def hevc_sps():
    w=W()
    w.u(1,0); w.u(6,33); w.u(6,0); w.u(3,1)     # nal header
    w.u(4,0); w.u(3,2); w.f(1)                  # vps id, max_sub_layers_minus1=2, nesting
    # PTL general
    w.u(2,0); w.f(0); w.u(5,1); w.u(32,0x60000000); w.u(4,0b1011); w.u(43,0); w.u(1,0); w.u(8,93)
    # sub layer flags: layer0 profile+level, layer1 level only
    w.f(1); w.f(1); w.f(0); w.f(1)
    for i in range(2,8): w.u(2,0)
    # layer0 profile (88 bits) + level
    w.u(2,0); w.f(0); w.u(5,1); w.u(32,0x60000000); w.u(4,0b1011); w.u(43,0); w.u(1,0); w.u(8,90)
    w.u(8,63)  # layer1 level
    w.ue(0)         # sps id
    w.ue(1)         # chroma 4:2:0
    w.ue(1920); w.ue(1088)
    w.f(1); w.ue(0); w.ue(0); w.ue(0); w.ue(4)  # conf window bottom 4*2=8 -> 1080
    w.ue(0); w.ue(0)   # bit depths
    w.ue(4)            # log2_max_poc_lsb_minus4 -> 8
    w.f(1)
    for i in range(3): w.ue(4); w.ue(2); w.ue(0)
    w.ue(0); w.ue(3); w.ue(0); w.ue(3); w.ue(1); w.ue(1)
    w.f(1); w.f(1)   # scaling list enabled + data present
    for size_id in range(4):
        m=0
        while m<6:
            if (size_id+m)%3==0:
                w.f(0); w.ue(m if size_id<3 else m//3)   # predict (delta)
            else:
                w.f(1)
                coef=min(64,1<<(4+(size_id<<1)))
                if size_id>1: w.se(9)
                for i in range(coef): w.se([1,-2,0,3,127,-128][i%6] if i%7 else 0)
            m += 3 if size_id==3 else 1
    w.f(1); w.f(1)     # amp, sao
    w.f(1); w.u(4,7); w.u(4,7); w.ue(0); w.ue(1); w.f(1)  # pcm
    # short term RPS
    w.ue(5)
    # 0: explicit: neg -1,-3  pos +2
    w.ue(2); w.ue(1); w.ue(0); w.f(1); w.ue(1); w.f(0); w.ue(1); w.f(1)
    # 1: inter from 0, deltaRps=-1: ref has 3 pocs -> 4 flag groups
    w.f(1); w.f(1); w.ue(0)
    for used,use_delta in [(1,None),(0,1),(1,None),(0,0)]:
        w.f(used)
        if not used: w.f(use_delta)
    # 2: inter from 1, deltaRps=+2
    w.f(1); w.f(0); w.ue(1)
    # set1 = S0 from pos: (2-1=1 >0 no); deltaRps -1 use_delta[3]=0 no; neg: -1-1=-2 (use j0=1 yes), -3-1=-4 (use j1=1 yes) -> S0=[-2,-4]; S1: neg rev: none >0; pos j0: 2-1=1 use[2]=1 -> S1=[1]. total 3 -> 4 flags
    for used,use_delta in [(1,None),(1,None),(0,1),(1,None)]:
        w.f(used)
        if not used: w.f(use_delta)
    # 3: explicit empty-ish: 1 neg
    w.f(0); w.ue(1); w.ue(0); w.ue(7); w.f(1)
    # 4: inter from 3 with deltaRps=-3: ref has 1 -> 2 flags
    w.f(1); w.f(1); w.ue(2); w.f(1); w.f(1)
    w.f(1); w.ue(2); w.u(8,17); w.f(1); w.u(8,200); w.f(0)   # long term
    w.f(1); w.f(1)   # tmvp, strong intra
    w.f(1)           # vui
    w.f(1); w.u(8,255); w.u(16,7); w.u(16,5)
    w.f(1); w.f(0)
    w.f(1); w.u(3,5); w.f(1); w.f(1); w.u(8,1); w.u(8,1); w.u(8,1)
    w.f(1); w.ue(1); w.ue(1)
    w.f(0); w.f(0); w.f(0)
    w.f(1); w.ue(0); w.ue(0); w.ue(0); w.ue(0)
    w.f(1); w.u(32,1001); w.u(32,24000); w.f(1); w.ue(0); w.f(0)
    w.f(0)  # bitstream restriction
    w.f(0)  # sps_extension_present
    w.trailing()
    return epb(w.bytes())

def h264_sps():
    w=W()
    w.u(8,0x67); w.u(8,100); w.u(8,0); w.u(8,40)
    w.ue(0); w.ue(1); w.ue(0); w.ue(0); w.f(0)
    w.f(1)  # seq_scaling_matrix_present
    for i in range(8):
        if i in (2,5):
            w.f(0); continue
        w.f(1)
        size = 16 if i<6 else 64
        if i==1:
            w.se(-8)   # nextScale = 0 at j=0 -> use default list, one code only
            continue
        last=8
        for j in range(size):
            target = 8 + (j*7 + i*3) % 60
            if i==3 and j==10:
                d = (0 - last) % 256
                if d>127: d-=256
                w.se(d); break    # nextScale 0: rest repeats lastScale
            d = (target - last) % 256
            if d>127: d-=256
            w.se(d); last=target
    w.ue(0)  # log2_max_frame_num_minus4
    w.ue(1)  # poc type 1
    w.f(0); w.se(-2); w.se(3); w.ue(3); w.se(1); w.se(-1); w.se(5)
    w.ue(4); w.f(0)
    w.ue(119); w.ue(33)   # 1920 x (34*2*16=1088)
    w.f(0); w.f(1)        # frame_mbs_only=0, mbaff
    w.f(1)
    w.f(1); w.ue(0); w.ue(0); w.ue(0); w.ue(2)  # crop bottom 2*(2*2)=8 -> 1080
    w.f(1)  # vui
    w.f(1); w.u(8,255); w.u(16,4); w.u(16,3)
    w.f(0)
    w.f(1); w.u(3,5); w.f(1); w.f(1); w.u(8,1); w.u(8,1); w.u(8,1)
    w.f(1); w.ue(0); w.ue(0)
    w.f(1); w.u(32,1001); w.u(32,60000); w.f(1)
    w.f(0); w.f(0); w.f(0); w.f(0)
    w.trailing()
    return epb(w.bytes())

open('crafted-hevc-sps-inter-rps-scaling-lists-1080p.bin','wb').write(hevc_sps())
open('crafted-h264-sps-scaling-matrices-poc1-mbaff-1080p.bin','wb').write(h264_sps())
# splice into annex B streams: replace SPS NAL
def splice(path, sps, typ_fn, out):
    d=open(path,'rb').read()
    parts=d.split(b'\x00\x00\x01')
    res=bytearray()
    for p in parts[1:]:
        p=p.rstrip(b'\x00') if False else p
        if typ_fn(p): p=sps+b'\x00'
        res += b'\x00\x00\x00\x01'+p
    open(out,'wb').write(res)
splice('x265.hevc', hevc_sps(), lambda p: (p[0]>>1)&0x3f==33, 'crafted.hevc')
splice('x264.h264', h264_sps(), lambda p: p[0]&0x1f==7, 'crafted.h264')
print(hevc_sps().hex()); print(h264_sps().hex())
