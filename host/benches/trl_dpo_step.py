"""Time DPO optimisation steps of TRL's DPOTrainer with PEFT LoRA on CPU.

Usage: python trl_dpo_step.py GGUF_FILE NLGRAPH_JSON STEPS

It trains the same model, pairs and lengths as `cargo bench -p wow --bench
dpo_step`: the first 16 NLGraph questions as prompts, fixed chosen and
rejected answers, 2 pairs a step, LoRA rank 16 on all seven projections,
reference log-probabilities computed once before training. The last line
printed is JSON with the median step time and the peak resident memory.
"""

import json
import os
import sys
import tempfile
import time

import torch
from datasets import Dataset
from peft import LoraConfig
from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
from trl import DPOConfig, DPOTrainer

CHOSEN = "The shortest path goes through node 3 and node 5, so the total weight is 12. " * 6
REJECTED = "The path visits every node once, so the total weight is 40 in total here. " * 6


class StepTimer(TrainerCallback):
    def __init__(self):
        self.seconds = []

    def on_step_begin(self, args, state, control, **kwargs):
        self.started = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        self.seconds.append(time.perf_counter() - self.started)


def load_float_model(gguf_path):
    """Dequantizes the GGUF into a plain float32 model: transformers refuses
    to train (or save) a model loaded straight from GGUF, so its weights move
    into a fresh model built from the same config."""
    directory, name = os.path.split(os.path.abspath(gguf_path))
    loaded = AutoModelForCausalLM.from_pretrained(directory, gguf_file=name, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(directory, gguf_file=name)
    model = AutoModelForCausalLM.from_config(loaded.config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict())
    del loaded
    return model, tokenizer


def peak_rss_mib():
    """Returns this process's peak resident memory (VmHWM). getrusage's
    ru_maxrss would be wrong here: Linux carries the parent's peak across
    exec into a child it starts."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("/proc/self/status has no VmHWM line")


def main():
    gguf_path, data_path, steps = sys.argv[1], sys.argv[2], int(sys.argv[3])
    torch.set_num_threads(int(os.environ.get("WOW_BENCH_THREADS", "2")))
    problems = json.load(open(data_path))
    questions = [problems[key]["question"] for key in sorted(problems, key=int)[:16]]
    rows = {
        "prompt": [[{"role": "user", "content": q}] for q in questions],
        "chosen": [[{"role": "assistant", "content": CHOSEN}] for _ in questions],
        "rejected": [[{"role": "assistant", "content": REJECTED}] for _ in questions],
    }

    with tempfile.TemporaryDirectory() as workdir:
        model, tokenizer = load_float_model(gguf_path)
        config = DPOConfig(
            output_dir=os.path.join(workdir, "out"),
            per_device_train_batch_size=2,
            gradient_accumulation_steps=1,
            max_steps=steps,
            learning_rate=5e-5,
            beta=0.1,
            precompute_ref_log_probs=True,
            logging_steps=1,
            save_strategy="no",
            report_to=[],
            max_length=1024,
            use_cpu=True,
            bf16=False,
            fp16=False,
            dataloader_num_workers=0,
        )
        lora = LoraConfig(
            r=16,
            lora_alpha=16,
            lora_dropout=0.0,
            target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
            task_type="CAUSAL_LM",
        )
        trainer = DPOTrainer(
            model=model,
            args=config,
            train_dataset=Dataset.from_dict(rows),
            processing_class=tokenizer,
            peft_config=lora,
        )
        timer = StepTimer()
        trainer.add_callback(timer)
        trainer.train()

    later_steps = sorted(timer.seconds[1:]) or timer.seconds
    result = {
        "median_step_seconds": later_steps[len(later_steps) // 2],
        "step_seconds": timer.seconds,
        "peak_rss_mib": peak_rss_mib(),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
