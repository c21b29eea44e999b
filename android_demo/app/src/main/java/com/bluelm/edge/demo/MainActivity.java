package com.bluelm.edge.demo;

import android.app.Activity;
import android.app.AlertDialog;
import android.content.DialogInterface;
import android.content.Intent;
import android.graphics.Bitmap;
import android.graphics.BitmapFactory;
import android.os.Build;
import android.os.Bundle;
import android.provider.MediaStore;
import android.view.View;
import android.view.ViewGroup;
import android.widget.ScrollView;
import android.widget.SeekBar;
import android.widget.TextView;
import com.bluelm.edge.core.BundleManifest;
import com.bluelm.edge.core.ChatEngine;
import com.bluelm.edge.core.GenerationStats;
import com.bluelm.edge.core.RunnerException;
import java.io.File;
import java.util.ArrayList;
import java.util.List;

/**
 * The chat screen: a multi-turn conversation (New chat clears it; messages with the thinking
 * shown apart from the answer, collapsible), text input, images from gallery or camera (several
 * per message), thinking on/off, a budget slider (0, steps, unlimited), a temperature slider
 * (0 = greedy; LlmModule has no top-p), stop, a live line (decode tokens/s and resident memory)
 * then the answer's stats, a bundle picker and the backend and SoC of the loaded bundle.
 */
public class MainActivity extends Activity {

    static final int[] BUDGET_STEPS = {0, 32, 64, 128, 256, 512, 1024};
    /** Temperature in steps of 0.1 from 0 (greedy) to 1.5. */
    static final int TEMPERATURE_STEPS = 15;
    private static final int PICK_IMAGE = 1;
    private static final int TAKE_PHOTO = 2;

    private BundleStore store;
    private BundleManifest manifest;
    private ChatEngine engine;
    private final List<Bitmap> images = new ArrayList<Bitmap>();
    private boolean think = true;
    private TextView header;
    private TextView stats;
    private TextView input;
    private TextView budgetLabel;
    private TextView thinkButton;
    private SeekBar budgetBar;
    private SeekBar temperatureBar;
    private TextView temperatureLabel;
    private ViewGroup messages;
    private ScrollView scroll;

    @Override
    protected void onCreate(Bundle savedInstanceState) {
        super.onCreate(savedInstanceState);
        setContentView(R.layout.activity_main);
        store = new BundleStore(this);
        header = findViewById(R.id.header);
        stats = findViewById(R.id.stats);
        input = findViewById(R.id.input);
        budgetLabel = findViewById(R.id.budget_label);
        thinkButton = findViewById(R.id.think);
        budgetBar = findViewById(R.id.budget);
        temperatureBar = findViewById(R.id.temperature);
        temperatureLabel = findViewById(R.id.temperature_label);
        messages = findViewById(R.id.messages);
        scroll = findViewById(R.id.scroll);
        wireButtons();
        budgetBar.setMax(BUDGET_STEPS.length);
        budgetBar.setProgress(BUDGET_STEPS.length);
        budgetBar.setOnSeekBarChangeListener(new BudgetListener());
        temperatureBar.setMax(TEMPERATURE_STEPS);
        temperatureBar.setProgress(0);
        temperatureBar.setOnSeekBarChangeListener(new BudgetListener());
        showBudget();
        openFirstBundle();
    }

    private void wireButtons() {
        findViewById(R.id.new_chat).setOnClickListener(new View.OnClickListener() {
            @Override
            public void onClick(View v) {
                if (engine != null) {
                    engine.newChat(); // the next answer starts from an empty history
                }
                messages.removeAllViews();
            }
        });
        findViewById(R.id.pick_bundle).setOnClickListener(new View.OnClickListener() {
            @Override
            public void onClick(View v) {
                pickBundle();
            }
        });
        findViewById(R.id.send).setOnClickListener(new View.OnClickListener() {
            @Override
            public void onClick(View v) {
                send();
            }
        });
        findViewById(R.id.stop).setOnClickListener(new View.OnClickListener() {
            @Override
            public void onClick(View v) {
                if (engine != null) {
                    engine.stop();
                }
            }
        });
        thinkButton.setOnClickListener(new View.OnClickListener() {
            @Override
            public void onClick(View v) {
                think = !think;
                showBudget();
            }
        });
        findViewById(R.id.gallery).setOnClickListener(new View.OnClickListener() {
            @Override
            public void onClick(View v) {
                startActivityForResult(new Intent(Intent.ACTION_GET_CONTENT).setType("image/*"), PICK_IMAGE);
            }
        });
        findViewById(R.id.camera).setOnClickListener(new View.OnClickListener() {
            @Override
            public void onClick(View v) {
                startActivityForResult(new Intent(MediaStore.ACTION_IMAGE_CAPTURE), TAKE_PHOTO);
            }
        });
    }

    /** The budget chosen on screen: null unlimited, 0 non-thinking, else N pieces. */
    Integer budget() {
        int p = budgetBar.getProgress();
        if (!think) {
            return Integer.valueOf(0);
        }
        return p >= BUDGET_STEPS.length ? null : Integer.valueOf(BUDGET_STEPS[p]);
    }

    float temperature() {
        return temperatureBar.getProgress() / 10f;
    }

    private void showBudget() {
        Integer b = budget();
        thinkButton.setText(think ? "Thinking: on" : "Thinking: off");
        budgetLabel.setText(b == null ? "Budget: unlimited" : "Budget: " + b + " tokens");
        float t = temperature();
        temperatureLabel.setText(t == 0f ? "Temperature: 0 (greedy)" : "Temperature: " + t);
    }

    private final class BudgetListener implements SeekBar.OnSeekBarChangeListener {
        @Override
        public void onProgressChanged(SeekBar bar, int progress, boolean fromUser) {
            showBudget();
        }

        @Override
        public void onStartTrackingTouch(SeekBar bar) {
        }

        @Override
        public void onStopTrackingTouch(SeekBar bar) {
        }
    }

    private void openFirstBundle() {
        try {
            String embedded = store.extractEmbedded();
            List<String> ids = store.list();
            String id = embedded != null ? embedded : (ids.isEmpty() ? null : ids.get(0));
            if (id == null) {
                header.setText("No bundle. Push one with: bluelm-edge deploy ./bluelm-bundle");
                return;
            }
            openBundle(id);
        } catch (Exception e) {
            header.setText("Cannot open bundle: " + e.getMessage());
        }
    }

    private void pickBundle() {
        final List<String> ids = store.list();
        CharSequence[] items = ids.toArray(new CharSequence[ids.size()]);
        new AlertDialog.Builder(this).setTitle("Bundles").setItems(items, new DialogInterface.OnClickListener() {
            @Override
            public void onClick(DialogInterface dialog, int which) {
                openBundle(ids.get(which));
            }
        }).show();
    }

    private void openBundle(final String id) {
        try {
            manifest = store.manifest(id);
        } catch (BundleManifest.ManifestException e) {
            header.setText(e.getMessage());
            return;
        }
        String soc = Build.VERSION.SDK_INT >= 31 ? Build.SOC_MODEL : Build.HARDWARE;
        String note = store.buildNote();
        header.setText(manifest.bundleId + " | " + manifest.backend + (manifest.soc == null ? "" : " " + manifest.soc)
                + " | phone SoC " + soc + (note == null ? "" : "\n" + note));
        final File dir = store.dir(id);
        new Thread(new Runnable() {
            @Override
            public void run() {
                loadEngine(dir);
            }
        }).start();
    }

    @Override
    protected void onDestroy() {
        ChatEngine e = engine;
        engine = null;
        if (e != null) {
            e.stop();
            e.close();
        }
        super.onDestroy();
    }

    /** Free the old module first (two 3B modules do not fit), then load the new one. */
    private synchronized void loadEngine(File dir) {
        if (engine != null) {
            engine.stop();
            engine.close();
            engine = null;
        }
        ChatEngine e = null;
        try {
            e = ModuleRunner.engine(dir, manifest);
            final long ms = e.load();
            engine = e;
            post("Loaded in " + ms + " ms");
        } catch (RunnerException err) {
            if (e != null) {
                e.close();
            }
            post(err.oneLine());
        } catch (java.io.IOException err) {
            post("Cannot read the bundle: " + err.getMessage());
        } catch (Throwable t) { // an offline build has no native libraries: UnsatisfiedLinkError
            post("Cannot load the model: " + t);
        }
    }

    private void post(final String text) {
        runOnUiThread(new Runnable() {
            @Override
            public void run() {
                stats.setText(text);
            }
        });
    }

    @Override
    protected void onActivityResult(int requestCode, int resultCode, Intent data) {
        if (resultCode != RESULT_OK || data == null) {
            return;
        }
        try {
            Bitmap image = null;
            if (requestCode == PICK_IMAGE) {
                image = BitmapFactory.decodeStream(getContentResolver().openInputStream(data.getData()));
            } else if (requestCode == TAKE_PHOTO) {
                image = data.getParcelableExtra("data");
            }
            int need = image == null || manifest == null ? 0
                    : (tileCount() + ImageInput.tileCount(image, manifest)) * manifest.tokensPerTile;
            if (manifest != null && need >= manifest.maxContext) { // the images alone would fill the context
                stats.setText("Not attached: the images would take " + need + " of the context's "
                        + manifest.maxContext + " positions");
                return;
            }
            if (image != null) {
                images.add(image);
            }
            stats.setText(images.size() + " image(s) attached");
        } catch (java.io.FileNotFoundException e) {
            stats.setText("Cannot read the image: " + e.getMessage());
        }
    }

    private void send() {
        final String text = input.getText().toString();
        if (engine == null || text.length() == 0) {
            return;
        }
        input.setText("");
        addMessage("You: " + text);
        final TextView thinking = addMessage("");
        final TextView answer = addMessage("");
        thinking.setVisibility(View.GONE);
        thinking.setOnClickListener(new CollapseListener(thinking));
        final List<List<float[]>> tiles = new ArrayList<List<float[]>>();
        for (Bitmap image : images) {
            tiles.add(ImageInput.tiles(image, manifest));
        }
        images.clear();
        final Integer b = budget();
        engine.setTemperature(temperature());
        new Thread(new Runnable() {
            @Override
            public void run() {
                runAnswer(text, tiles, b, thinking, answer);
            }
        }).start();
    }

    private int tileCount() {
        int n = 0;
        for (Bitmap image : images) {
            n += ImageInput.tileCount(image, manifest);
        }
        return n;
    }

    private void runAnswer(String text, List<List<float[]>> tiles, Integer b, final TextView thinking,
            final TextView answer) {
        try {
            GenerationStats s = engine.answer(text, tiles, b, new ChatEngine.Listener() {
                @Override
                public void onPiece(final String piece, final boolean inThinking, boolean forced) {
                    runOnUiThread(new Runnable() {
                        @Override
                        public void run() {
                            (inThinking ? thinking : answer).append(piece);
                            ChatEngine e = engine;
                            if (e != null) {
                                stats.setText(e.live().line()); // decode tokens/s and memory as it streams
                            }
                            if (inThinking) {
                                thinking.setVisibility(View.VISIBLE);
                            }
                            scroll.fullScroll(View.FOCUS_DOWN);
                        }
                    });
                }
            });
            post(s.summary()); // the runner's error on one line when the answer failed
        } catch (Throwable t) {
            post("Generation failed: " + t);
        }
    }

    private TextView addMessage(String text) {
        TextView v = new TextView(this);
        v.setText(text);
        messages.addView(v);
        return v;
    }

    /** Tapping the thinking text folds it to one line and back. */
    private static final class CollapseListener implements View.OnClickListener {
        private final TextView view;
        private CharSequence full;

        CollapseListener(TextView view) {
            this.view = view;
        }

        @Override
        public void onClick(View v) {
            if (full == null) {
                full = view.getText();
                view.setText("Thinking (tap to show)");
            } else {
                view.setText(full);
                full = null;
            }
        }
    }
}
