package main

import (
	"fmt"
	"os"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// plot draws one panel per suite and delay: the median time of each
// scenario (x) for each configuration (bars side by side).
func (r *results) plot(path string) error {
	var rows [][]*plot.Plot
	for _, suite := range r.Suites {
		var row []*plot.Plot
		for _, d := range r.Delays {
			p := plot.New()
			p.Title.Text = fmt.Sprintf("%s, %s", suite, delayText(d))
			p.Y.Label.Text = "seconds (median)"
			p.Y.Min = 0
			names := make([]string, len(r.Scenarios))
			for i, sc := range r.Scenarios {
				names[i] = scenarioText[sc]
			}
			width := vg.Points(60 / float64(max(len(r.Configs), 1)))
			top := 0.0
			for i, c := range r.Configs {
				vals := make(plotter.Values, len(r.Scenarios))
				for j, sc := range r.Scenarios {
					if s := r.cell(suite, c, sc, d, seconds); s.ok() {
						vals[j] = s.median
						top = max(top, s.median)
					}
				}
				bars, err := plotter.NewBarChart(vals, width)
				if err != nil {
					return err
				}
				bars.LineStyle.Width = 0
				bars.Color = plotutil.Color(i)
				bars.Offset = width * vg.Length(float64(i)-float64(len(r.Configs)-1)/2)
				p.Add(bars)
				p.Legend.Add(configText[c], bars)
			}
			// Room above the bars for the legend, in the top left.
			p.Y.Max = top * (1.15 + 0.09*float64(len(r.Configs)))
			p.Legend.Top, p.Legend.Left = true, true
			p.Legend.XOffs = vg.Millimeter * 3
			p.NominalX(names...)
			row = append(row, p)
		}
		rows = append(rows, row)
	}
	const panelW, panelH = 6 * vg.Inch, 4 * vg.Inch
	img := vgimg.New(panelW*vg.Length(len(r.Delays)), panelH*vg.Length(len(r.Suites)))
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: len(rows), Cols: len(r.Delays), PadX: vg.Millimeter * 4, PadY: vg.Millimeter * 4,
		PadTop: vg.Millimeter * 2, PadBottom: vg.Millimeter * 2, PadLeft: vg.Millimeter * 2, PadRight: vg.Millimeter * 2}
	canvases := plot.Align(rows, tiles, dc)
	for i := range rows {
		for j := range rows[i] {
			rows[i][j].Draw(canvases[i][j])
		}
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
