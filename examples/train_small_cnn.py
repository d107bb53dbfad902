"""Train the small CNN with simclr_core alone on CIFAR-10, then compare the linear probe on h with
the same encoder at random initialisation. About 5 minutes on a 2-core CPU (README: figures)."""
import sys
from simclr_core import DataConfig, ModelConfig, RunConfig, TrainConfig, train

data = DataConfig(dataset="cifar10", root=sys.argv[1] if len(sys.argv) > 1 else "../shared/datasets",
                  train_subset=20000, test_subset=5000)
config = RunConfig(data=data, model=ModelConfig(encoder="small_cnn"), train=TrainConfig(epochs=0))
random_init = train(config)
config.train.epochs = 8
trained = train(config, callback=lambda m: print(f"epoch {m.epoch}: loss {m.loss:.3f}, kNN {m.knn_acc:.3f}, {m.images_per_s:.0f} img/s"))
print(f"linear probe on h: random init {random_init.probe_h:.3f}, trained {trained.probe_h:.3f} ({trained.wall_time_s:.0f} s)")
