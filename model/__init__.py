"""The InternVLA-A1 policy: configs (config), Mixture-of-Transformers (mot), the network (internvla),
image tokenizers (tokenizer), understanding inputs (understanding, qwen3_vl), flow matching (flow),
checkpoints (checkpoint), the Policy call (policy, preprocess), training (train_step), sizes (summary)."""
