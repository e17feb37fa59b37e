// RUN: python %models slice_to_length %t.onnx
// RUN: ember-opt %t.onnx -p convert-onnx-to-nn,fold-constants,dce | filecheck %s

// HF's position_ids[:, :seq_len] with a dynamic sequence: Slice(ids, 0, Shape(x)[1]) has a
// symbolic end, which a static slice cannot hold; it becomes a gather at Range(0, S), whose
// static-length form (type [S]) reads only start and delta (its limit operand is the start).

// CHECK:      func.func @main(%{{.*}}: tensor<?x?xi64, #nn.layout<["B", "S"]>> {ember.name = "x"}) -> (tensor<1x?xi64, #nn.layout<["S"]>> {ember.name = "y"}) {
// CHECK-NEXT:   %[[IDS:.*]] = nn.weight "ids" : tensor<1x32xi64>
// CHECK-NEXT:   %[[ZERO:.*]] = nn.constant dense<0> : tensor<i64>
// CHECK-NEXT:   %[[ONE:.*]] = nn.constant dense<1> : tensor<i64>
// CHECK-NEXT:   %[[POS:.*]] = nn.range %[[ZERO]], %[[ZERO]], %[[ONE]] : (tensor<i64>, tensor<i64>, tensor<i64>) -> tensor<?xi64, #nn.layout<["S"]>>
// CHECK-NEXT:   %[[Y:.*]] = nn.gather %[[IDS]], %[[POS]] {axis = 1 : i64} : (tensor<1x32xi64>, tensor<?xi64, #nn.layout<["S"]>>) -> tensor<1x?xi64, #nn.layout<["S"]>>
// CHECK-NEXT:   func.return %[[Y]]
