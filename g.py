
import sys
import transition, keras, numpy as np, tensorflow as tf
tf.config.experimental.enable_op_determinism()

def get_network(epoch):  # widens "hidden" at epoch 3; Dropout (a SeedGenerator) and a concatenation
    x = keras.Input((4,), name="x")
    h = keras.layers.Dense(8 if epoch < 3 else 12, activation="tanh", name="hidden")(x)
    h = keras.layers.Dropout(0.2, name="drop")(h)
    return keras.Model(x, keras.layers.Dense(3, name="out")(keras.layers.Concatenate(name="cat")([h, x])))

rng = np.random.RandomState(0)
x = rng.randn(64, 4).astype("float32")
y = ((x[:, 0] > 0).astype("int32") + (x[:, 1] > 0)).astype("int32")
dev = tf.data.Dataset.from_tensor_slices((x[:32], y[:32])).batch(16)
es = keras.callbacks.EarlyStopping(monitor="val_loss", min_delta=1e-3, patience=50)
mgr = transition.TransitionManager(sys.argv[1], get_network=get_network, num_epochs=4, save_every_n_steps=3,
                                   optimizer=lambda: keras.optimizers.Adam(0.01), copy_param_mode="subset",
                                   callbacks=[es])
with mgr:
    mgr.fit(lambda epoch, seed: tf.data.Dataset.from_tensor_slices((x, y)).shuffle(64, seed=seed).batch(8),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), validation_data=dev,
            metrics=["accuracy"])
