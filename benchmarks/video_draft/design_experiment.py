import time, math, sys, torch, torch.nn.functional as F
torch.set_num_threads(2)
from torch.utils.data import TensorDataset, DataLoader
from vqvae_lib.video.doom import collect, replay, Doom, FORWARD, RIGHT, LEFT
from vqvae_lib.video.action_prior import ActionPrior, ActionPriorConfig
from vqvae_lib.vqvae import VQVAE, VQVAEConfig
from vqvae_lib.train import fit
K=int(sys.argv[1]) if len(sys.argv)>1 else 512
STEPS1=int(sys.argv[2]) if len(sys.argv)>2 else 800
STEPS2=int(sys.argv[3]) if len(sys.argv)>3 else 600
t0=time.time()
tr=collect(int(sys.argv[4]) if len(sys.argv)>4 else 300, 24, seed=0, frame_skip=int(sys.argv[5]) if len(sys.argv)>5 else 4); te=collect(24, 20, seed=1, frame_skip=int(sys.argv[5]) if len(sys.argv)>5 else 4)
print('collect', time.time()-t0, tr.frames.shape, 'stuck', tr.stuck.float().mean().item())
x=tr.frames.flatten(0,1)
torch.manual_seed(0)
vq=VQVAE(VQVAEConfig(in_channels=3, num_codes=K, code_dim=64, hidden=64, res_hidden=32, quantizer='ema', restart_after=100))
bs=32; epochs=max(1, STEPS1*bs//len(x)); 
dl=DataLoader(TensorDataset(x.float()/255), batch_size=bs, shuffle=True, drop_last=True)
steps=len(dl)*epochs
t=time.time(); fit(vq, dl, epochs=epochs, lr=1e-3); print('stage1', steps,'steps', time.time()-t, (time.time()-t)/steps)
vq.eval()
def enc(frames):
    with torch.no_grad():
        return torch.cat([vq.encode(f.float()/255) for f in frames.flatten(0,1).split(256)]).view(*frames.shape[:2], 16, 16)
def dec(codes):
    with torch.no_grad():
        return torch.cat([vq.decode(c) for c in codes.flatten(0,1).split(256)]).view(*codes.shape[:2],3,64,64).clamp(0,1)
ctr=enc(tr.frames); cte=enc(te.frames)
rec=dec(cte); mse=F.mse_loss(rec, te.frames.float()/255).item(); print('PSNR', 10*math.log10(1/mse), 'codes used', ctr.unique().numel())
print('persist', (ctr[:,1:]==ctr[:,:-1]).float().mean().item())
C=2
def windows(codes, acts):
    w=codes.unfold(1, C+1, 1).permute(0,1,4,2,3).flatten(0,1)  # (E*(T-C+1), C+1, H, W)
    a=acts[:, C-1:].flatten()
    return w, a
wtr, atr = windows(ctr, tr.actions); wte, ate = windows(cte, te.actions)
print(wtr.shape, atr.shape)
torch.manual_seed(0)
ap=ActionPrior(ActionPriorConfig(num_codes=K, context=C, channels=32, num_layers=4))
dl2=DataLoader(TensorDataset(wtr, atr), batch_size=32, shuffle=True, drop_last=True)
ep2=max(1, STEPS2//len(dl2))
t=time.time(); h=fit(ap, dl2, epochs=ep2, lr=1e-3); print('prior', ep2*len(dl2), 'steps', time.time()-t, (time.time()-t)/(ep2*len(dl2)))
ap.eval()
with torch.no_grad():
    right=ap.nll_bits(wte, ate).mean().item(); wrong=ap.nll_bits(wte, (ate+1)%3).mean().item()
    out=ap(wte, ate)[1]; aux=F.cross_entropy(out, wte[:,-1]).item()/math.log(2)*256
    out=ap(wte, (ate+1)%3)[1]; auxw=F.cross_entropy(out, wte[:,-1]).item()/math.log(2)*256
print(f'test bits/frame right {right:.0f} wrong {wrong:.0f}  aux {aux:.0f} aux wrong {auxw:.0f}')
# rollouts
n=8; ctxn=6; T=10
g=Doom(frame_skip=int(sys.argv[5]) if len(sys.argv)>5 else 4)
res={}
for name,act in [('forward',FORWARD),('right',RIGHT)]:
    truths=[]; seeds=[]
    for i in range(len(te.seeds)):
        acts=te.actions[i,:ctxn-1].tolist()+[act]*T
        try: truths.append(replay(te.seeds[i], acts, game=g, frame_skip=g.frame_skip)); seeds.append(i)
        except ValueError: pass
        if len(truths)==n: break
    truth=torch.stack(truths).float()/255
    cctx=enc(torch.stack(truths)[:, :ctxn])
    for given_name, given, smp, temp in [('own',act,'pixelcnn',1.0),('own-T0.5',act,'pixelcnn',0.5),('own-mode',act,'mode',1.0),('wrong-mode', LEFT if act==RIGHT else RIGHT,'mode',1.0)]:
        gen=torch.Generator().manual_seed(0)
        t=time.time(); z=ap.rollout(cctx, torch.full((len(truth),T), given), generator=gen, sampler=smp, temperature=temp); ts=time.time()-t
        imag=dec(z)
        err=((imag-truth[:, ctxn:])**2).mean((0,2,3,4))
        res[(name,given_name)]=err
        print(name, given_name, 'rollout s', round(ts,1), 'mse per step', [round(v,4) for v in err.tolist()])
    copy=((truth[:, ctxn-1:ctxn]-truth[:, ctxn:])**2).mean((0,2,3,4)); print(name,'copy', [round(v,4) for v in copy.tolist()])
    floor=((dec(enc(torch.stack(truths)[:, ctxn:]))-truth[:, ctxn:])**2).mean((0,2,3,4)); print(name,'floor', [round(v,4) for v in floor.tolist()])
    # wrong-truth: compare own rollout to other action's truth later
g.close()
print('total', time.time()-t0)
