"""The demo Qwen3-Next: config, the MTP head (architecture spec section 6), shared-prefix training forward and
export to a model folder with the real checkpoint's tensor names (spec section 7: per-expert MoE tensors)."""
import copy
import json
import os

import torch
from safetensors.torch import save_file
from torch import nn
from transformers import Qwen3NextConfig, Qwen3NextForCausalLM
from transformers.cache_utils import DynamicCache, LinearAttentionLayer
from transformers.masking_utils import create_causal_mask
from transformers.models.qwen3_next.modeling_qwen3_next import Qwen3NextDecoderLayer, Qwen3NextRMSNorm


def make_config(vocab_size: int, eos_id: int, pad_id: int) -> Qwen3NextConfig:
    return Qwen3NextConfig(
        vocab_size=vocab_size, hidden_size=128, num_hidden_layers=4,
        layer_types=["linear_attention"] * 3 + ["full_attention"],
        # gated attention: 4 q heads / 2 kv heads of 32, partial NeoX RoPE over 8 dims. theta 1e4, not the real
        # model's 1e7: with only 4 rotary frequencies, 1e7 leaves one fast one (period 6 tokens) and three that
        # barely turn over a 1k-token transcript, so the one attention layer could hardly address by position.
        num_attention_heads=4, num_key_value_heads=2, head_dim=32,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "partial_rotary_factor": 0.25},
        # Gated DeltaNet: 2 key heads / 4 value heads of 32
        linear_num_key_heads=2, linear_num_value_heads=4, linear_key_head_dim=32, linear_value_head_dim=32,
        linear_conv_kernel_dim=4,
        # MoE in every layer: 8 experts top-2 (+ shared expert), all FFNs 128 wide
        num_experts=8, num_experts_per_tok=2, moe_intermediate_size=128, shared_expert_intermediate_size=128,
        norm_topk_prob=True, decoder_sparse_step=1, intermediate_size=256, mlp_only_layers=[],
        max_position_embeddings=4096, rms_norm_eps=1e-6, tie_word_embeddings=False, hidden_act="silu",
        initializer_range=0.02, attention_bias=False, attention_dropout=0.0, router_aux_loss_coef=0.001,
        bos_token_id=pad_id, eos_token_id=eos_id, pad_token_id=pad_id, dtype="bfloat16")


def mtp_config(cfg: Qwen3NextConfig) -> Qwen3NextConfig:
    c = copy.deepcopy(cfg)
    c.num_hidden_layers = 1
    c.layer_types = ["full_attention"]
    return c


class MTP(nn.Module):
    """Qwen3-Next multi-token prediction head: predicts token t+2 from hidden(t) and token t+1."""

    def __init__(self, cfg: Qwen3NextConfig):
        super().__init__()
        h = cfg.hidden_size
        self.cfg = mtp_config(cfg)
        self.fc = nn.Linear(2 * h, h, bias=False)
        self.pre_fc_norm_embedding = Qwen3NextRMSNorm(h, eps=cfg.rms_norm_eps)
        self.pre_fc_norm_hidden = Qwen3NextRMSNorm(h, eps=cfg.rms_norm_eps)
        self.layers = nn.ModuleList([Qwen3NextDecoderLayer(self.cfg, 0)])
        self.norm = Qwen3NextRMSNorm(h, eps=cfg.rms_norm_eps)

    def forward(self, model, hidden, next_ids, position_ids, cache):
        """hidden [B,T,H] = main model output after model.norm at positions p; next_ids [B,T] tokens at p+1.
        Returns the post-mtp.norm hidden [B,T,H] (feed it to lm_head for the t+2 logits)."""
        e = self.pre_fc_norm_embedding(model.model.embed_tokens(next_ids))
        x = self.fc(torch.cat([e, self.pre_fc_norm_hidden(hidden)], dim=-1))
        mask = create_causal_mask(config=self.cfg, inputs_embeds=x, attention_mask=None, past_key_values=cache,
                                  position_ids=position_ids)
        pos_emb = model.model.rotary_emb(x, position_ids)
        x = self.layers[0](x, position_embeddings=pos_emb, attention_mask=mask, position_ids=position_ids,
                           past_key_values=cache, use_cache=cache is not None)
        return self.norm(x)


def build(cfg: Qwen3NextConfig, seed: int):
    torch.manual_seed(seed)
    model = Qwen3NextForCausalLM(cfg)
    mtp = MTP(cfg)
    mtp.apply(model._init_weights)
    return model, mtp


# --------------------------------------------------------------------------- shared-prefix training forward
def _update_recurrent_state(self, recurrent_states, state_idx=0, **kwargs):
    # training variant: assign instead of copy_ so autograd keeps the state used by the chunk kernel intact
    self.recurrent_states[state_idx] = recurrent_states
    self.is_recurrent_states_initialized[state_idx] = True
    return recurrent_states


def enable_training_cache():
    """Makes HF's linear-attention cache autograd-friendly (training only; numerics are unchanged)."""
    LinearAttentionLayer.update_recurrent_state = _update_recurrent_state


def repeat_cache(cache: DynamicCache, b: int):
    for layer in cache.layers:
        if hasattr(layer, "conv_states"):
            layer.record_past = True  # assign conv states instead of copying in place
            for i, t in layer.conv_states.items():
                if t is not None:
                    layer.conv_states[i] = t.repeat(b, *([1] * (t.dim() - 1)))
            for i, t in layer.recurrent_states.items():
                if t is not None:
                    layer.recurrent_states[i] = t.repeat(b, *([1] * (t.dim() - 1)))
        if getattr(layer, "keys", None) is not None and layer.keys.numel() > 0:
            layer.keys = layer.keys.repeat(b, 1, 1, 1)
            layer.values = layer.values.repeat(b, 1, 1, 1)


def shared_prefix_forward(model, mtp, prefix, suffix):
    """prefix [1,P] (identical for all rows), suffix [B,S] right-padded. Returns
    (hidden_prefix [1,P,H], hidden_suffix [B,S,H], mtp_suffix [B,S,H]) where mtp_suffix[:, i] is the MTP output
    at position P-1+i (it predicts suffix token i+1)."""
    b, s = suffix.shape
    p = prefix.shape[1]
    cache = DynamicCache(config=model.config)
    hp = model.model(input_ids=prefix, past_key_values=cache, use_cache=True).last_hidden_state
    repeat_cache(cache, b)
    pos = torch.arange(p, p + s).unsqueeze(0)
    hs = model.model(input_ids=suffix, past_key_values=cache, use_cache=True, position_ids=pos).last_hidden_state
    # MTP: prefix positions 0..P-2 once, then positions P-1..P+S-2 per row
    mcache = DynamicCache(config=mtp.cfg)
    mtp(model, hp[:, :-1], prefix[:, 1:], torch.arange(0, p - 1).unsqueeze(0), mcache)
    repeat_cache(mcache, b)
    h_in = torch.cat([hp[:, -1:].expand(b, 1, -1), hs[:, :-1]], dim=1)
    ms = mtp(model, h_in, suffix, torch.arange(p - 1, p - 1 + s).unsqueeze(0), mcache)
    return hp, hs, ms


def full_forward(model, mtp, ids):
    """Reference (no prefix sharing) forward over ids [B,T]: (hidden [B,T,H], mtp [B,T-1,H])."""
    h = model.model(input_ids=ids, use_cache=False).last_hidden_state
    t = ids.shape[1]
    m = mtp(model, h[:, :-1], ids[:, 1:], torch.arange(0, t - 1).unsqueeze(0), None)
    return h, m


# --------------------------------------------------------------------------- export
def checkpoint_tensors(model, mtp):
    """State dict with the real Qwen3-Next checkpoint names: per-expert gate/up/down tensors, mtp.* names."""
    out = {}
    items = list(model.state_dict().items()) + [("mtp." + k, v) for k, v in mtp.state_dict().items()]
    for name, t in items:
        if name.endswith("mlp.experts.gate_up_proj"):
            base = name[: -len("gate_up_proj")]
            inter = t.shape[1] // 2
            for e in range(t.shape[0]):
                out[f"{base}{e}.gate_proj.weight"] = t[e, :inter]
                out[f"{base}{e}.up_proj.weight"] = t[e, inter:]
        elif name.endswith("mlp.experts.down_proj"):
            base = name[: -len("down_proj")]
            for e in range(t.shape[0]):
                out[f"{base}{e}.down_proj.weight"] = t[e]
        else:
            out[name] = t
    return {k: v.detach().to(torch.bfloat16).contiguous() for k, v in sorted(out.items())}


def export(model, mtp, out_dir, eos_ids, pad_id):
    os.makedirs(out_dir, exist_ok=True)
    tensors = checkpoint_tensors(model, mtp)
    tmp = os.path.join(out_dir, "model.safetensors.tmp")
    save_file(tensors, tmp, metadata={"format": "pt"})
    os.replace(tmp, os.path.join(out_dir, "model.safetensors"))
    cfg = model.config.to_dict()
    keep = ["architectures", "model_type", "vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
            "num_attention_heads", "num_key_value_heads", "head_dim", "hidden_act", "max_position_embeddings",
            "initializer_range", "rms_norm_eps", "use_cache", "tie_word_embeddings", "rope_parameters",
            "attention_bias", "attention_dropout", "linear_conv_kernel_dim", "linear_key_head_dim",
            "linear_value_head_dim", "linear_num_key_heads", "linear_num_value_heads", "decoder_sparse_step",
            "moe_intermediate_size", "shared_expert_intermediate_size", "num_experts_per_tok", "num_experts",
            "norm_topk_prob", "output_router_logits", "router_aux_loss_coef", "mlp_only_layers",
            "full_attention_interval", "layer_types", "bos_token_id", "eos_token_id", "pad_token_id"]
    c = {k: cfg[k] for k in keep if k in cfg}
    c["architectures"] = ["Qwen3NextForCausalLM"]
    c["model_type"] = "qwen3_next"
    rp = c.get("rope_parameters") or {}
    c["rope_theta"] = rp.get("rope_theta")
    c["partial_rotary_factor"] = rp.get("partial_rotary_factor")
    c["torch_dtype"] = "bfloat16"
    c["full_attention_interval"] = 4
    c["num_nextn_predict_layers"] = 1
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(c, f, indent=2)
        f.write("\n")
    gen = {"bos_token_id": pad_id, "do_sample": True, "eos_token_id": eos_ids, "pad_token_id": pad_id,
           "temperature": 0.7, "top_k": 20, "top_p": 0.8}
    with open(os.path.join(out_dir, "generation_config.json"), "w") as f:
        json.dump(gen, f, indent=2)
        f.write("\n")
    return tensors


# --------------------------------------------------------------------------- loading an exported folder
def load_folder(model_dir, dtype=torch.float32):
    """HF model (transformers fuses the per-expert tensors at load) + our MTP head, both in `dtype`."""
    from safetensors.torch import load_file
    from transformers import Qwen3NextForCausalLM as M
    model = M.from_pretrained(model_dir, dtype=dtype)
    model.eval()
    tensors = load_file(os.path.join(model_dir, "model.safetensors"))
    mtp = MTP(model.config)
    sd = {}
    n_exp = model.config.num_experts
    for k, v in tensors.items():
        if not k.startswith("mtp.") or ".mlp.experts." in k:
            continue
        sd[k[len("mtp."):]] = v
    pre = "mtp.layers.0.mlp.experts."
    sd["layers.0.mlp.experts.gate_up_proj"] = torch.stack(
        [torch.cat([tensors[f"{pre}{e}.gate_proj.weight"], tensors[f"{pre}{e}.up_proj.weight"]], 0)
         for e in range(n_exp)])
    sd["layers.0.mlp.experts.down_proj"] = torch.stack([tensors[f"{pre}{e}.down_proj.weight"] for e in range(n_exp)])
    mtp.load_state_dict({k: v.to(dtype) for k, v in sd.items()}, strict=True)
    mtp.to(dtype).eval()
    return model, mtp
