"""Defaults for every D2LNet training config: the paper's colour QF 10 setting.

    python train.py --config=configs/default.py --workdir=runs/qf10_color
    python train.py --config=configs/default.py:gray --workdir=runs/qf10_gray

Data: DIV2K and Flickr2K HR images in the folder $D2LJAX_DATA names (README.md, "Data"), or
--config.train_data / --config.val_data. Time: the paper's
schedule at batch 8 of 256x256 needs days on one accelerator; we have not run it to the end.
Expected result (the paper's Table 1/2 for QF 10): LIVE1 27.82 dB colour, 30.08 dB gray.
Variants import this and override a few fields; the argument after ':' is the mode
('color', the default, or 'gray'). Any field can be overridden: --config.batch_size=16.
"""
import ml_collections
from ml_collections import config_dict


def get_config(arg: str = "") -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()

    # ---- data (d2ljax.samples.Recipe; d2ljax.data or d2ljax.grain_data make the batches)
    config.input_pipeline = "auto"  # 'tf.data' (the reference), 'grain' (no TensorFlow): the same
    # batches, bit for bit; 'auto': tf.data when TensorFlow is installed, else grain
    config.data_workers = -1  # grain: worker processes (-1: one per core but one, 0 below 4 cores)
    # Training images: comma-separated files, folders or globs ($VARIABLES expanded; "shipped:"
    # or "shipped:NAME" for the photos shipped with d2ljax, as is ""), or "tfds:NAME" (e.g.
    # "tfds:div2k/bicubic_x2" with tfds_image_key="hr").
    config.train_data = "$D2LJAX_DATA/DIV2K_train_HR,$D2LJAX_DATA/Flickr2K_HR"
    config.tfds_split = "train"  # split of a "tfds:" source
    config.tfds_image_key = "hr"  # image feature of a "tfds:" source
    config.tfds_data_dir = ""  # tensorflow-datasets data_dir ("": TFDS_DATA_DIR or ~/tensorflow_datasets)
    config.cache_budget_mb = 4096  # decoded images are kept in memory when they fit, else decoded per sample
    config.mode = arg or "color"  # 'color' (RGB, in_chn 3) or 'gray' (BT.601 Y, in_chn 1)
    config.qf = (10,)  # JPEG quality factor(s), one drawn per patch
    config.qf_range = config_dict.placeholder(tuple)  # (lo, hi): draw the QF uniformly from it ...
    config.qf_range_prob = 1.0  # ... with this probability (blind training; see configs/blind.py)
    config.misalign = 0.0  # probability that a patch is shifted off the 8x8 JPEG grid (FBCNN: 0.5)
    config.patch_size = 256  # square training patches (a multiple of 2**(depth-1))
    config.batch_size = 8  # GLOBAL batch, split over all devices of all processes
    config.seed = 0  # parameter initialisation and data order

    # ---- model (d2ljax.model.D2LNet; in_chn follows mode)
    config.wf = 64  # width of the first U-Net level
    config.depth = 4  # U-Net levels
    config.relu_slope = 0.2  # LeakyReLU slope
    config.dtype = "float32"  # compute dtype of the convolutions: 'float32' or 'bfloat16' (params stay float32)
    config.init_from = ""  # fine-tune: a pretrained name, model folder or workdir (same mode/wf/depth); "" starts afresh
    config.identity_init = True  # zero the heads' last convs so training starts from out_2 == input

    # ---- loss (d2ljax.losses.dual_domain_loss): l1 L1(out_2) + amp L1(A(out_1)) + phase L1(P(out_2))
    config.l1_weight = 1.0
    config.amp_weight = 0.05  # the paper's alpha
    config.phase_weight = 0.05  # the paper's alpha

    # ---- optimiser: Adam (the paper's betas); the learning rate and steps are our choice,
    # the paper does not give them.
    config.learning_rate = 2e-4  # peak learning rate
    config.b1 = 0.9
    config.b2 = 0.999
    config.eps = 1e-8
    config.schedule = "cosine"  # 'cosine' (warmup, then cosine decay to num_train_steps), 'constant'
    # (warmup, then flat) or 'budget' (warmup, flat, then cosine decay ending with time_budget_s)
    config.warmup_steps = 1000  # linear warmup from 0
    config.final_lr_fraction = 0.01  # cosine ends at this fraction of the peak
    config.grad_clip_norm = 0.0  # clip the global gradient norm to this (0: off)
    config.ema_decay = 0.999  # EMA of the parameters, used for validation and export (0: off)
    config.num_train_steps = 200_000
    config.time_budget_s = 0.0  # stop after the step that crosses this budget, save, validate
    # and exit 0; rerunning resumes (0: no budget)
    config.budget_clock = "wall"  # the budget's clock: 'wall', or 'cpu' (this process's CPU time:
    # a paused or starved run keeps its budget)
    config.budget_decay_fraction = 0.2  # 'budget' schedule: share of the run spent decaying

    # ---- feedback and checkpoints (in the workdir)
    config.log_every_steps = 100  # metrics.jsonl / TensorBoard / progress bar period
    config.checkpoint_every_steps = 5000  # save (and validate) period; also at the last step
    config.val_every_steps = 0  # validate this often as well (0: only when a checkpoint is saved)
    config.keep_checkpoints = 3  # latest checkpoints kept (the best by val_psnr is kept as well)
    config.val_data = "$D2LJAX_DATA/DIV2K_valid_HR"  # held-out images (as train_data); "" for none
    config.val_qf = (10,)  # QFs the validation images are compressed at
    config.val_crop = 256  # centre crop of each validation image (0: whole images)
    config.progress_bar = True  # tqdm bar on process 0
    return config
